from mixchat.cli import main

main()
