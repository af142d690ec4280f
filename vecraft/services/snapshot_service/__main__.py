from vecraft.services.snapshot_service.main import main

main()
