import os

# maxsim-cpu's rayon pool reads this on first use: its rows are single-thread measurements.
os.environ.setdefault("RAYON_NUM_THREADS", "1")
