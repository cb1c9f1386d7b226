"""Translation models: the RNN encoder-decoder with switchable attention and the Transformer."""

from seq2seq.models.interface import DecoderState, ModelOutput, Seq2SeqModel, StepOutput

__all__ = ["DecoderState", "ModelOutput", "Seq2SeqModel", "StepOutput"]
