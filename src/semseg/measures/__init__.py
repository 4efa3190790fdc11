"""Measures that training, its outputs, the export and the server all use, with no framework and nothing of the
package above the contract: the confusion matrix (mIOU), an epoch's and a fit's results, and sliding windows."""
