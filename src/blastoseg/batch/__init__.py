"""Batch runs: many images or time-lapses into one output folder, resumable, in-process
or on a Dask cluster.

- `naming`     output names from input names; which files are results
- `inputs`     what the command line was given -> tasks (images, time-lapses); header checks
- `timelapse`  EmbryoScope export folders and frame times
- `manifest`   manifest.csv: one row per input, appended safely, compacted atomically
- `tasks`      one task run in any process: the model cache, torch threads, the outputs
- `exports`    per-embryo tables (cleavage times, cc2, s2, s3) and a results folder's CSVs
- `cluster`    a Dask client for --workers / --scheduler
- `runner`     the plan (skip, redo, overwrite), the loop or the cluster, the summary

Importing this package imports neither torch nor dask.
"""
