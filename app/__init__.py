"""The FastAPI app, its routers, the CLI, and the wiring of everything else."""
