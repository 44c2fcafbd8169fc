import numpy as np

from serving.video_slots import DENSE_LIMIT, NO_SLOT, VideoSlots


def test_assigned_ids_are_found_in_request_order_and_others_are_not():
    slots = VideoSlots()
    slots.assign(np.array([7, 3, 11]), first_slot=0)
    slots.assign(np.array([5000]), first_slot=3)  # grows the dense table

    found = slots.lookup(np.array([11, 4, 7, 5000, 7, -2]))

    assert found.tolist() == [2, NO_SLOT, 0, 3, 0, NO_SLOT]
    assert len(slots) == 4 and 3 in slots and 4 not in slots


def test_ids_beyond_the_dense_table_and_negative_ids_are_kept_too():
    slots = VideoSlots()
    huge = DENSE_LIMIT + 12_345
    slots.assign(np.array([huge, -9, 1]), first_slot=10)

    assert slots.lookup(np.array([1, huge, -9, huge + 1])).tolist() == [12, 10, 11, NO_SLOT]
    assert sorted(slots.video_ids()) == sorted([1, huge, -9])
