from handoff_lib.cli.main import main

main()
