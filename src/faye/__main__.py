from faye.cli import main

main()
