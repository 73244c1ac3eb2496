"""Images to train and evaluate on; nothing heavy is imported here.

- :mod:`~auxtune.data.datasets`: ``load_dataset(cfg)`` -> train / val / holdout / test splits,
  ``load_corrupted_test(cfg)`` -> the corrupted test set (a :class:`CorruptedTestSet`).
- :mod:`~auxtune.data.synthetic`: the built-in 10-class dataset (no download needed).
- :mod:`~auxtune.data.cifar`: CIFAR-10/100 from the python layout; :mod:`~auxtune.data.cifar_c`:
  the CIFAR-C ``.npy`` layout (reader, validation, writer).
- :mod:`~auxtune.data.corruptions`: the 19 corruptions; :mod:`~auxtune.data.make_c`: write a
  corrupted set of any test set (``auxtune data make-c``).
- :mod:`~auxtune.data.meta_validation`: meta-validation batches (``holdout`` and ``paper``).
"""
