"""What every stage stands on: config, work directory layout, sharding, ledgers, atomic writes,
errors, media probing."""
