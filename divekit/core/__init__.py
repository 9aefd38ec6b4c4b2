"""Infrastructure every layer may use: errors, registries, devices, safetensors I/O, torch.distributed
helpers, checkpoints, plots and the run folder's layout. Imports nothing else of divekit."""
