from vecraft.services.compactor.main import main

main()
