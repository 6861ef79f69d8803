from hsafeat.cli import main

main()
