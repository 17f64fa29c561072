"""Models: the ViT encoder over spectrogram patches, the masked autoencoder, masking and presets.

Import the submodules (``biomae.models.mae`` …) directly; this package imports nothing so that
``import biomae.models`` stays free of torch.
"""
