from sendpromptly.cli import main

main()
