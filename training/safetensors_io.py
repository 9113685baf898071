"""safetensors files written as the format specifies (no safetensors package on Debian 12)."""

import json
import struct

import numpy as np

_DTYPES = {'F16': '<f2', 'F32': '<f4'}


def write_safetensors(path, tensors, dtype='F16', metadata=None):
    """tensors: name → torch tensor; stored in `dtype`, names sorted, header padded to 8 bytes."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        data = tensors[name].detach().numpy().astype(_DTYPES[dtype]).tobytes()
        header[name] = {'dtype': dtype, 'shape': list(tensors[name].shape), 'data_offsets': [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header['__metadata__'] = metadata or {'format': 'pt'}
    text = json.dumps(header, separators=(',', ':')).encode('utf-8')
    text += b' ' * (-len(text) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
