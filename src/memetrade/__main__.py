from memetrade.cli import main

main()
