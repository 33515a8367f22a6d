"""Lightning callbacks: pictures for TensorBoard and the HPARAMS summary."""
