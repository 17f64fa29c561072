"""Training: configs (``config``), optimizer / schedule / checkpoints (``common``), the pretraining
data stream (``data``) and loop (``pretrain``); fine-tuning in ``finetune``. Import submodules."""
