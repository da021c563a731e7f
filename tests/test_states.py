"""Line and order states: the warehouse stories of issue 3 about state, plus precedence and roll-up."""

from scenario_tables import Story, at


def test_scenario_2_line_picked_1_of_2_with_its_task_still_open_is_pickable_with_no_blocker():
    s = Story()
    s.order("SO-1002", lines=[("SKU-A", 2)])
    s.task("T-2001", "SO-1002", 1, required=2, picked=1, status="in_progress", location="B-02-01")
    s.analyse("10:00")
    state, reason = s.order_state("SO-1002")
    assert state == "pickable"
    assert "pick task T-2001 in_progress, 1 of 2 picked at B-02-01 (WMS)" in reason
    assert s.blockers_of("SO-1002") == []


def test_scenario_3_ship_complete_account_with_2_of_3_lines_allocated_is_held_on_allocation_short():
    s = Story()
    s.instruction("C-SC", "ship_complete")
    s.order("SO-1003", customer_id="C-SC", lines=[("SKU-1", 4), ("SKU-2", 4), ("SKU-3", 4)])
    s.con.execute("UPDATE order_lines SET allocated_qty = 0 WHERE order_id = 'SO-1003' AND line_no = 3")
    s.analyse("10:00")
    state, reason = s.order_state("SO-1003")
    assert state == "held"
    assert "ship-complete order (account instruction (CRM)) waits for line 3 SKU-3 allocated 0 of 4" in reason
    [blocker] = s.blockers_of("SO-1003")
    assert (blocker["reason"], blocker["owner"], blocker["source_key"]) == ("allocation_short", "inventory control", "SO-1003/3")


def test_scenario_3_partial_allowed_order_with_2_of_3_lines_allocated_is_pickable_and_reports_the_unallocated_line():
    s = Story()
    s.instruction("C-PA", "partial_allowed")
    s.order("SO-1004", customer_id="C-PA", lines=[("SKU-1", 4), ("SKU-2", 4), ("SKU-3", 4)])
    s.con.execute("UPDATE order_lines SET allocated_qty = 0 WHERE order_id = 'SO-1004' AND line_no = 3")
    s.analyse("10:00")
    state, reason = s.order_state("SO-1004")
    assert state == "pickable"
    assert "not in this shipment: line 3 SKU-3 allocated 0 of 4" in reason
    assert "partial shipment allowed" in reason
    [blocker] = s.blockers_of("SO-1004")
    assert blocker["reason"] == "allocation_short"
    assert "partial shipment allowed" in blocker["detail"]



def test_a_ship_complete_line_allocated_short_but_with_a_pick_task_for_all_of_it_does_not_hold_the_order():
    # the WMS already tasked the whole line: the OMS allocation lags, nothing waits for stock
    s = Story()
    s.instruction("C-SC", "ship_complete")
    s.order("SO-1005", customer_id="C-SC", lines=[("SKU-1", 4), ("SKU-2", 4)])
    s.con.execute("UPDATE order_lines SET allocated_qty = 0 WHERE order_id = 'SO-1005'")
    s.task("T-2005", "SO-1005", 2, required=4, picked=0, status="open", location="B-01-01")
    s.analyse("10:00")
    lines = dict(s.con.execute("SELECT line_no, allocation_short FROM line_states WHERE order_id = 'SO-1005'").fetchall())
    assert lines == {1: True, 2: False}
    state, reason = s.order_state("SO-1005")
    assert state == "held"
    assert "waits for line 1 SKU-1 allocated 0 of 4" in reason
    assert "line 2 SKU-2" not in reason


def test_a_task_without_a_line_number_covers_its_skus_first_line_so_that_line_is_not_allocation_short():
    s = Story()
    s.instruction("C-SC", "ship_complete")
    s.order("SO-1006", customer_id="C-SC", lines=[("SKU-1", 4)])
    s.con.execute("UPDATE order_lines SET allocated_qty = 0 WHERE order_id = 'SO-1006'")
    s.task("T-2006", "SO-1006", None, sku="SKU-1", required=4, picked=0, status="open")
    s.analyse("10:00")
    assert s.one("SELECT allocation_short FROM line_states WHERE order_id = 'SO-1006'")[0] is False
    assert s.order_state("SO-1006")[0] == "pickable"

def test_an_order_is_only_as_far_as_its_least_advanced_line():
    s = Story()
    s.order("SO-1", lines=2)
    s.task("T-1", "SO-1", 1, picked=5, status="picked")
    s.task("T-2", "SO-1", 2, picked=0, status="open")
    s.analyse("10:00")
    assert s.order_state("SO-1")[0] == "pickable"
    assert s.one("SELECT line_summary FROM order_states")[0] == "1 pickable, 1 picked"


def test_a_hold_outranks_a_short_line_and_a_short_line_outranks_being_past_the_cutoff():
    s = Story()
    s.order("SO-H", lines=1)
    s.task("T-H", "SO-H", 1, picked=2, status="short")
    s.hold("H-1", "SO-H", code="CR")
    s.order("SO-S", lines=1)
    s.task("T-S", "SO-S", 1, picked=2, status="short")
    s.analyse("16:30")
    assert s.order_state("SO-H")[0] == "held"
    assert s.order_state("SO-S")[0] == "short"


def test_a_picked_order_past_its_pickup_is_delayed_and_says_which_pickup_it_missed():
    s = Story()
    s.order("SO-D")
    s.picked("SO-D")
    s.analyse("16:05")
    state, reason = s.order_state("SO-D")
    assert state == "delayed"
    assert reason.startswith("missed UPS GND pickup Tue 10 Jun 16:00; line 1 picked 5 of 5")


def test_an_order_placed_after_todays_pickup_is_due_on_the_next_one_and_not_delayed():
    s = Story()
    s.order("SO-LATE", ordered_at=at("16:30"), released_at=at("16:40"))
    s.analyse("17:00")
    assert s.order_state("SO-LATE")[0] == "pickable"
    assert s.one("SELECT cutoff_label FROM order_cutoffs WHERE order_id = 'SO-LATE'")[0] == "UPS GND pickup Wed 11 Jun 16:00"


def test_a_cancelled_order_is_cancelled_with_no_blockers_even_with_an_open_hold():
    s = Story()
    s.order("SO-X", release_status="cancelled", cancelled_at=at("09:45"))
    s.hold("H-9", "SO-X", code="CR")
    s.analyse("10:00")
    assert s.order_state("SO-X") == ("cancelled", "order cancelled in the OMS at Tue 10 Jun 09:45")
    assert s.blockers_of("SO-X") == []
    assert s.promise_of("SO-X")[0] == "cancelled"


def test_a_line_whose_sku_the_wms_does_not_know_stays_released():
    s = Story()
    s.order("SO-U", lines=[("SKU-NEW", 1)], stock=False)
    s.analyse("10:00")
    state, reason = s.order_state("SO-U")
    assert state == "released"
    assert "SKU SKU-NEW is not in the WMS inventory (unknown SKU)" in reason


def test_an_order_not_released_in_the_oms_is_not_released():
    s = Story()
    s.order("SO-N", release_status="not_released", released_at=None)
    s.analyse("09:00")
    assert s.order_state("SO-N")[0] == "not_released"


def test_progress_runs_picked_packed_ready_handed_off_as_the_records_arrive():
    s = Story()
    s.order("SO-P")
    s.picked("SO-P")
    s.analyse("12:00")
    assert s.order_state("SO-P")[0] == "picked"
    s.carton("C-1", "SO-P", event_at="12:10")
    s.analyse("12:15")
    assert s.order_state("SO-P")[0] == "packed"
    s.shipment("S-1", "SO-P", label="12:20", manifest="12:30")
    s.analyse("12:35")
    assert s.order_state("SO-P")[0] == "ready_for_handoff"
    s.con.execute("UPDATE linked_shipments SET handed_off_at = ?", [at("15:50")])
    s.analyse("15:55")
    state, reason = s.order_state("SO-P")
    assert state == "handed_off"
    assert reason == "handed to UPS at Tue 10 Jun 15:50, shipment S-1 (carrier)"
    assert s.promise_of("SO-P")[0] == "handed_off"


def test_analysing_never_changes_the_input_tables():
    s = Story()
    s.order("SO-1", lines=2)
    s.task("T-1", "SO-1", 1, picked=2, status="short")
    before = {
        t: s.con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in ("orders", "order_lines", "linked_pick_tasks")
    }
    s.analyse("10:00")
    after = {t: s.con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in before}
    assert before == after
