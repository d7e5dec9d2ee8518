/******************************************************************************
 * pascal-fpga RTL library
 *
 * @brief   The `active` of a layer-stream word (a SIMD group): 1 + the index of
 *          the last frame that is nonzero in any lane, 0 if every frame is 0.
 *          Shared by the feeders (pascal_vector_gen, pascal_window_gen).
 *
 * @description
 *  Purely combinational. Frames are thermometer-ordered in the designs, so the
 *  active frames of a group are its first `active` ones; the definition holds
 *  for any word (the last nonzero frame counts, earlier zero frames do not
 *  lower it).
 *
 * @param SIMD  lanes (channels) of the word (>= 1)
 * @param T_IN  frames per lane (>= 1)
 * @param FB    bits per frame (>= 1)
 * @param AB    bits of `active` (>= bits(T_IN) = max(1, bit length of T_IN))
 *
 * Ports: data = the word, lane s frame t at [(s*T_IN+t)*FB +: FB];
 * active = its active (AB bits).
 *****************************************************************************/
`default_nettype none

module pascal_active #(
    parameter int SIMD = 1,
    parameter int T_IN = 1,
    parameter int FB   = 1,
    parameter int AB   = 1
) (
    input  logic [SIMD*T_IN*FB-1:0] data,
    output logic [AB-1:0]           active
);
    if (SIMD < 1 || T_IN < 1 || FB < 1) begin : g_bad_shape
        $error("pascal_active: SIMD, T_IN and FB must be >= 1");
    end
    if (AB < 1 || (T_IN >> AB) != 0) begin : g_bad_ab
        $error("pascal_active: AB must hold T_IN");
    end

    // frame_any[t]: frame t is nonzero in some lane
    logic [T_IN-1:0] frame_any;
    always_comb begin
        frame_any = '0;
        for (int t = 0; t < T_IN; t++)
            for (int s = 0; s < SIMD; s++)
                frame_any[t] = frame_any[t] | (|data[(s * T_IN + t) * FB +: FB]);
    end

    always_comb begin
        active = '0;
        for (int t = 0; t < T_IN; t++)
            if (frame_any[t]) active = AB'(t + 1);
    end
endmodule

`default_nettype wire
