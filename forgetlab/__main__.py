from forgetlab.cli import main

main()
