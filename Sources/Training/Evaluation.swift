// Evaluation.swift: the kNN monitor and the linear-probe pieces (SPEC 6), on features the
// frozen encoder produced in evaluation mode.
//
// kNN (the weighted vote of Wu et al. 2018, as solo-learn and lightly monitor SSL runs):
//   f ← f / ‖f‖ for train and test features;
//   s_ij = f_testᵢ · f_trainⱼ (cosine similarity)
//   the k most similar train rows vote for their class with weight exp(s_ij / T)
//   prediction = the class with the largest total weight;  top-1 accuracy in percent
// Similarities are one GEMM per chunk of test rows on the backend.
//
// Linear probe: logits = f Wᵀ + b, softmax cross-entropy averaged over the batch:
//   L = −(1/B) Σ_i log softmax(logits_i)[y_i],   ∂L/∂logits = (softmax − onehot(y)) / B
// computed on the host in double (B x C is small); top-k accuracy counts a hit when the
// target is among the k largest logits.

import Backend
import Foundation

public enum KNNClassifier {
    /// Top-1 accuracy (percent) of the weighted kNN vote. Features are [n, F] row-major.
    public static func accuracy(
        trainFeatures: [Float], trainLabels: [Int32], testFeatures: [Float], testLabels: [Int32],
        classes: Int, k: Int = 200, temperature: Double = 0.1, backend: Backend
    ) throws -> Double {
        let n = trainLabels.count, m = testLabels.count
        guard n > 0, m > 0, trainFeatures.count % n == 0,
            testFeatures.count == m * (trainFeatures.count / n)
        else { throw BackendError.shapeMismatch("kNN features do not match the label counts") }
        let f = trainFeatures.count / n
        let k = min(k, n)
        let bank = try backend.tensor(normalizeRows(trainFeatures, f), shape: [n, f])
        let queries = normalizeRows(testFeatures, f)
        var correct = 0
        let chunk = max(1, min(m, (1 << 24) / max(n, 1)))
        var start = 0
        while start < m {
            let rows = min(chunk, m - start)
            let query = try backend.tensor(Array(queries[(start * f)..<((start + rows) * f)]),
                                           shape: [rows, f])
            let similarity = try backend.allocate(.float32, [rows, n])
            try backend.gemm(query, transposeA: false, bank, transposeB: true, into: similarity,
                             alpha: 1, beta: 0)
            let s: [Float] = try backend.download(similarity)
            for r in 0..<rows {
                let base = r * n
                var votes = [Double](repeating: 0, count: classes)
                for j in largest(k, of: s, in: base..<(base + n)) {
                    votes[Int(trainLabels[j - base])] += exp(Double(s[j]) / temperature)
                }
                let predicted = votes.indices.max { votes[$0] < votes[$1] }!
                if predicted == Int(testLabels[start + r]) { correct += 1 }
            }
            start += rows
        }
        return 100 * Double(correct) / Double(m)
    }

    /// Indices of the k largest values of `values[range]`, by a size-k min-heap (O(n log k)
    /// instead of sorting the whole row).
    static func largest(_ k: Int, of values: [Float], in range: Range<Int>) -> [Int] {
        var heap: [Int] = []   // min-heap on values[index]
        heap.reserveCapacity(k)
        func less(_ a: Int, _ b: Int) -> Bool { values[a] < values[b] }
        func siftDown(_ start: Int) {
            var i = start
            while true {
                let l = 2 * i + 1, r = l + 1
                var smallest = i
                if l < heap.count, less(heap[l], heap[smallest]) { smallest = l }
                if r < heap.count, less(heap[r], heap[smallest]) { smallest = r }
                if smallest == i { return }
                heap.swapAt(i, smallest)
                i = smallest
            }
        }
        for j in range {
            if heap.count < k {
                heap.append(j)
                var i = heap.count - 1
                while i > 0, less(heap[i], heap[(i - 1) / 2]) {
                    heap.swapAt(i, (i - 1) / 2)
                    i = (i - 1) / 2
                }
            } else if less(heap[0], j) {
                heap[0] = j
                siftDown(0)
            }
        }
        return heap
    }

    static func normalizeRows(_ x: [Float], _ f: Int) -> [Float] {
        var out = x
        for i in 0..<(x.count / f) {
            var squares = 0.0
            for j in 0..<f { squares += Double(x[i * f + j]) * Double(x[i * f + j]) }
            let scale = Float(1 / max(squares.squareRoot(), 1e-12))
            for j in 0..<f { out[i * f + j] *= scale }
        }
        return out
    }
}

/// Softmax cross-entropy and top-k hits of logits [B, C] against labels.
public enum SoftmaxCrossEntropy {
    /// Mean loss, its gradient with respect to the logits, and hits at top-1 and top-5.
    public static func evaluate(logits: [Float], labels: [Int32], classes: Int)
        -> (loss: Double, gradient: [Float], top1: Int, top5: Int)
    {
        let b = labels.count
        var gradient = [Float](repeating: 0, count: logits.count)
        var loss = 0.0
        var (top1, top5) = (0, 0)
        for i in 0..<b {
            let row = logits[(i * classes)..<((i + 1) * classes)]
            let largest = Double(row.max()!)
            var total = 0.0
            for value in row { total += exp(Double(value) - largest) }
            let target = Int(labels[i])
            loss += log(total) - (Double(row[i * classes + target]) - largest)
            for c in 0..<classes {
                let p = exp(Double(row[i * classes + c]) - largest) / total
                gradient[i * classes + c] = Float((p - (c == target ? 1 : 0)) / Double(b))
            }
            // rank of the target: how many logits beat it (ties go against the target)
            let rank = row.filter { $0 > row[i * classes + target] }.count
            if rank < 1 { top1 += 1 }
            if rank < 5 { top5 += 1 }
        }
        return (loss / Double(b), gradient, top1, top5)
    }
}
