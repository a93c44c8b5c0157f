from cascadeflow_cli.cli.entry import main

main()
