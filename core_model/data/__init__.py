"""Data contracts and datasets shared by pretraining, fine-tuning and the app."""
