"""Storage: database, models, repositories, encryption and retention."""
