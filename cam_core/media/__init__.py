"""Images in, maps out: decoding files, tracking where the model input lies
in the image, the DataLoader, and the map files.

- :mod:`.images`: any image file to RGB;
- :mod:`.geometry`: the frame of the model input in the original image;
- :mod:`.loader`: the DataLoader of inputs and frames;
- :mod:`.mapfiles`: Heatmaps as PNG files or inline arrays.
"""
