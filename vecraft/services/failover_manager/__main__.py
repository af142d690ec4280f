from vecraft.services.failover_manager.main import main

main()
