"""The twin report: fit, individuality, test-retest, recovery and phenotype link of a study."""
