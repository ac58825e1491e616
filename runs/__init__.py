"""The plumbing of training and test runs, kept out of the method's way: run folders and checkpoints
(``run_folder``), the training run's services (``training_run``), the test run (``testing_run``), several classes
(``classes_run``, ``class_results``), images and what was skipped (``dataset``), the process (``runtime``) and the
user's mistakes (``errors``)."""
