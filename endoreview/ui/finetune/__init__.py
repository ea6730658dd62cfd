"""Fine-tuning from the app: the dialog (:class:`FinetuneDialog`), live curves (:class:`FinetuneMonitor`), resume of
stopped runs (:class:`ResumePanel`) and the controller tying them to the jobs panel (:class:`FinetuneController`)."""
