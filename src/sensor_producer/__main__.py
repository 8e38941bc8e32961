from sensor_producer.cli import main

raise SystemExit(main())
