"""placeholder: being written (hrnet_w32 baseline)"""
