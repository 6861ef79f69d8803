"""The HSA-Net encoder: torch only (never rdkit)."""
from hsafeat.nn.config import EncoderConfig
from hsafeat.nn.encoder import EncoderOutput, HSAEncoder

__all__ = ["EncoderConfig", "EncoderOutput", "HSAEncoder"]
