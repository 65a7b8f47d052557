"""A module that runs in torch but that torch.export cannot trace (importable, so it reloads)."""

from sentence_transformers.sentence_transformer.modules import Normalize


class NormalizeLongBatches(Normalize):
    """Normalize only batches with more than 8 real tokens: a branch on tensor values."""

    def forward(self, features):
        if int(features["attention_mask"].sum()) > 8:
            return super().forward(features)
        return features
