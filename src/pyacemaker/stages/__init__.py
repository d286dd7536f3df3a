"""Science stages: plain Python on files, ASE Atoms and pydantic records; no Parsl."""
