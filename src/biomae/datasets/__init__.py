"""The unified bioacoustic dataset.

- :mod:`.registry` — one :class:`~.registry.DatasetAdapter` per public dataset (defined in
  :mod:`.adapters`, :mod:`.adapters_tables` and :mod:`.shared` from the generic layouts of
  :mod:`.layouts`): metadata, expected local layout, ``convert(root) -> (recordings, events)``.
- :mod:`.catalog` — imported datasets as Parquet tables, queried with DuckDB; :mod:`.local` adds
  folders of recordings with annotation files beside them.
- :mod:`.splits` — train/val/test and k-fold splits by recording, individual and site.
- :mod:`.prepared` — recordings decoded once at a model's rate (int16) for the training windows
  (:mod:`biomae.train.data`, :mod:`biomae.train.finetune_data`) to memory-map.

Nothing is imported here, so ``import biomae`` stays light.
"""
