"""Training: classical fits, the torch engine, deep models, augmentation and transfer."""
