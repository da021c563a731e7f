"""handoff: the warehouse pick-pack handoff picture, joined across OMS/ERP, WMS, carrier and CRM extracts."""

__version__ = "0.1.0"
