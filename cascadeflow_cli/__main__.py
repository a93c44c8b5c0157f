from cascadeflow_cli.cli.app import main

main()
