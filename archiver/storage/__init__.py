"""The archive's database: models, engines and migrations, the run lock, the store."""
