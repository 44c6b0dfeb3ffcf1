"""The server without gradio: everything about runs, tested without a browser.

    server.py       Service: the one object the interface holds (settings, models, speed, runs)
    knobs.py        Knobs: what a person chooses for a run, checked; the TrainConfig it becomes
    limits.py       whether this server can afford a run, and what to lower
    runs.py         a page's run: start or follow, poll, stop, leave, stream, restore
    producer.py     a run's own side: wait for a seat, train, publish frames
    frames.py       what pages draw from a run: curves, watched guesses, figures, the timeline
    shared_runs.py  identical runs trained once; the class run
    queue.py        training seats, first come first served
    jobs.py         TrainingJob and run_training: what the training process runs
    worker.py       the training process, its runs taking turns on the cores
    zerogpu.py      a ZeroGPU Space: runs on a lent GPU, on the visitor's quota, else on the CPU
    estimates.py    what a run will take here: time, memory, expected accuracy
    workfolder.py   the app's own work folder and what pages leave in it
    library.py      the models Explore looks inside
    compare.py, mistakes.py   a page's last two runs side by side; a run's mistakes
    own_sets.py     a person's own pictures held in memory; the lesson's folder, read once
    lessons.py      a lesson (link or file): the Build tab's values, locks, guesses, teacher key
    classroom.py    the lesson's pages and their runs, for the teacher's view

This package imports nothing from vit_demo.ui, and nothing here imports gradio (zerogpu.py
imports `spaces`, and only on a ZeroGPU Space).
"""
