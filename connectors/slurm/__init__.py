"""The SLURM center: a Slurm cluster behind slurmrestd."""
