"""AVE baselines re-implemented in PyTorch with the originals' layer names and quirks:
AV_att, DMRN and W-A+V-att (ECCV18), CMM cross-modality localization, AVEL and AVSDN as in the
CPSP repository, CMRAN and CMBS. `objectives` pairs each with its loss and prediction rule,
`presets` carries each original's hyperparameters."""
