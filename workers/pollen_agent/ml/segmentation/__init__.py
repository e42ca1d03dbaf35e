"""Segmentation: a label per pixel, "background" first (see ``pollen_contracts.contract.Task``).

The task plugs into the shared pieces rather than copying them: the zoo builds the model, the
training recipe runs it through an ``Objective``, and the one inference path
(``ml.inference``) preprocesses its images. One small module per part:

- ``model``: the U-Net and its ImageNet encoder (``unet_efficientnet_lite0``, ``freeze_encoder``)
- ``data`` and ``augment``: images with masks as a dataset, moved together by augmentation
- ``losses``: Dice + weighted cross-entropy
- ``objective``: what ``ml.recipe.train`` needs to train and select a segmentation model
- ``infer``: the one prediction function (whole image or sliding window, TTA, uncertainty)
- ``metrics``: Dice, IoU, HD95, lesion detection, confidence intervals, worst cases
- ``overlay``: masks, contours and maps as PNG
"""
