from gatewayctl.cli.main import main

main()
