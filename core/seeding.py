"""The one way a seed is derived from another: a run's seed and a key (an epoch, a step, an image).

    derive_seed(derive_seed(cfg.seed, step, STEPS), index, INDICES)   # one image's crop at one step

`derive_seed(seed, key, span)` is `seed * span + key` while `0 <= key < span` (and the seed is not
negative and the result below 2**63): distinct (seed, key) pairs then give distinct seeds, and these
are the values every published run was trained with. Outside that range the linear mix would collide
(seed 0 at epoch 7919 would get seed 1's epoch 0), so the seed is a hash of (seed, key, span) instead,
in [2**63, 2**64): a range the linear values never reach, where two pairs meet only if the 63-bit
hash collides. Every value is within what torch.Generator.manual_seed accepts.
"""

import hashlib

# the spans: how many keys a seed holds before the linear mix would reach the next seed's values
EPOCHS = 7_919  # a run's data order, one permutation per epoch
STEPS = 1_000_003  # a step's draws (masks, augmentations) under a run's seed; also a process rank
INDICES = 1_000_033  # an image's augmentation, by its index in the dataset, under (seed, step)
ITEMS = 7_919  # one item of a batch (a mask) or a step under a derived seed

HASHED = 2**63  # the first hashed seed: linear seeds stay below it


def derive_seed(seed: int, key: int, span: int) -> int:
    """A seed for `key` under `seed`, distinct for distinct (seed, key) at the same span."""
    if seed >= 0 and 0 <= key < span and seed * span + key < HASHED:
        return seed * span + key
    digest = hashlib.blake2b(f"{seed},{key},{span}".encode(), digest_size=8).digest()
    return HASHED + int.from_bytes(digest, "big") % HASHED
