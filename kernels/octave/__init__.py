"""Octave convolution kernels. TERMS is the term table both backends loop over (pure Python).

Each term: (weight index in (w_hh, w_hl, w_lh, w_ll), input index in (x_h, x_l), output index in
(y_h, y_l), input pooling factor at stride 1, at stride 2, output upsampling factor at stride 1, at
stride 2). A term computes up_u(conv(pool_f(input), weight)) and adds it to its output.
"""
TERMS = ((0, 0, 0, 1, 2, 1, 1),      # y_h += conv(x_h, w_hh)             stride 2: on pool_2(x_h)
         (1, 0, 1, 2, 4, 1, 1),      # y_l += conv(pool_2(x_h), w_hl)     stride 2: on pool_4(x_h)
         (2, 1, 0, 1, 1, 2, 1),      # y_h += up2(conv(x_l, w_lh))        stride 2: no upsampling
         (3, 1, 1, 1, 2, 1, 1))      # y_l += conv(x_l, w_ll)             stride 2: on pool_2(x_l)
