from blixard.cli.main import main

main()
