"""The export formats by name, and which one each dataset's original code reads.

Apart from `pipeline.export.formats` (which imports every exporter) so that `avel export
--help` lists them without loading pandas and h5py.
"""

FORMATS = ("ave", "llp", "vggsound-avel")
# dataset → the format its authors' training code reads (VGGSound itself has none)
DATASET_FORMATS = {"ave": "ave", "llp": "llp", "vggsound-avel": "vggsound-avel",
                   "vggsound-avel50k": "vggsound-avel"}
