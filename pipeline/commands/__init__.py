"""One module per `avel` command; each exports `command` (or a list `commands`)."""
