from vecraft.services.meta_manager.main import main

main()
