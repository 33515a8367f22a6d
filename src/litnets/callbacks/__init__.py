"""Lightning callbacks: last.ckpt with graceful stop, pictures for TensorBoard, HPARAMS."""
