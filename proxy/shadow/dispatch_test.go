package shadow

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// startWorkers runs n workers on d with run; the returned func closes d
// and waits for them.
func startWorkers(d *dispatcher, n int, run func(*Job)) (stop func()) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { d.work(func(j *Job) bool { run(j); return true }) })
	}
	return func() {
		d.close(true)
		wg.Wait()
	}
}

func TestDispatcherRunsEveryJobOnceInOrder(t *testing.T) {
	jobs := make([]*Job, 200)
	d := newDispatcher(1, len(jobs), time.Millisecond)
	var got []*Job
	done := make(chan struct{})
	stop := startWorkers(d, 1, func(j *Job) {
		got = append(got, j)
		if len(got) == len(jobs) {
			close(done)
		}
	})
	for i := range jobs {
		jobs[i] = new(Job)
		if r := d.push(jobs[i]); r != "" {
			t.Fatalf("push refused before close: %s", r)
		}
		if i%50 == 0 {
			time.Sleep(3 * time.Millisecond) // let the worker park now and then
		}
	}
	<-done
	stop()
	for i := range jobs {
		if got[i] != jobs[i] {
			t.Fatalf("job %d ran out of order", i)
		}
	}
}

func TestDispatcherWakesAWorkerPerIntervalNotPerJob(t *testing.T) {
	// A long interval: the first push wakes a worker, which stays awake
	// (waiting out the interval) while the rest arrive.
	d := newDispatcher(4, 256, 50*time.Millisecond)
	var ran atomic.Int64
	stop := startWorkers(d, 4, func(*Job) { ran.Add(1) })
	defer stop()
	const jobs = 100
	for range jobs {
		d.push(new(Job))
		time.Sleep(100 * time.Microsecond) // slower than a job runs: the queue stays short
	}
	waitFor(t, func() bool { return ran.Load() == jobs })
	// 1, or a few more when a job arrived while the worker was running
	// one (a worker busy with a job is not free to take another).
	if w := d.wakes(); w > 10 {
		t.Errorf("%d jobs woke workers %d times; want about 1", jobs, w)
	}

	// With no interval every job finding no worker awake wakes one, as a
	// channel hand-off would.
	d0 := newDispatcher(4, 256, 0)
	var ran0 atomic.Int64
	stop0 := startWorkers(d0, 4, func(*Job) { ran0.Add(1) })
	defer stop0()
	for range 20 {
		before := ran0.Load()
		d0.push(new(Job))
		waitFor(t, func() bool { return ran0.Load() == before+1 })
	}
	if w := d0.wakes(); w != 20 {
		t.Errorf("without an interval 20 jobs woke workers %d times, want 20", w)
	}
}

func TestDispatcherWakesAnotherWorkerWhenTheAwakeOnesAreBusy(t *testing.T) {
	d := newDispatcher(2, 64, time.Millisecond)
	ran, release, join := hangingFirst(t, d, 2)
	defer func() {
		d.close(true)
		join()
	}()
	const more = 10
	for range more {
		d.push(new(Job))
	}
	// The only awake worker is busy: the next job wakes the second, which
	// runs them all while the first still hangs.
	waitFor(t, func() bool { return ran.Load() == more })
	close(release)
	waitFor(t, func() bool { return ran.Load() == more+1 })
}

func TestDispatcherParksAndWakesAgain(t *testing.T) {
	d := newDispatcher(2, 8, time.Millisecond)
	var ran atomic.Int64
	stop := startWorkers(d, 2, func(*Job) { ran.Add(1) })
	defer stop()
	for i := range 5 {
		d.push(new(Job))
		waitFor(t, func() bool { return ran.Load() == int64(i+1) })
		// Idle for several intervals: every worker parks.
		waitFor(t, func() bool {
			d.mu.Lock()
			defer d.mu.Unlock()
			return d.awake == 0
		})
	}
	if w := d.wakes(); w != 5 {
		t.Errorf("5 jobs with idle gaps woke workers %d times, want 5", w)
	}
}

func TestDispatcherRefusesPastItsCapacity(t *testing.T) {
	d := newDispatcher(1, 2, time.Millisecond) // never started: nothing drains
	for i := range 2 {
		if r := d.push(new(Job)); r != "" {
			t.Fatalf("push %d refused: %s", i, r)
		}
	}
	if r := d.push(new(Job)); r != SkipPoolFull {
		t.Errorf("push past capacity: %q, want %q", r, SkipPoolFull)
	}
	if left := d.close(false); len(left) != 2 {
		t.Errorf("close handed back %d jobs, want the 2 queued", len(left))
	}
}

func TestDispatcherCloseRunsWhatIsQueued(t *testing.T) {
	d := newDispatcher(1, 16, time.Hour)
	ran, release, join := hangingFirst(t, d, 1)
	for range 3 {
		d.push(new(Job))
	}
	if left := d.close(true); left != nil {
		t.Fatalf("close with workers handed back %d jobs", len(left))
	}
	if r := d.push(new(Job)); r != SkipShutdown {
		t.Errorf("push after close: %q, want %q", r, SkipShutdown)
	}
	close(release)
	join()
	if got := ran.Load(); got != 4 {
		t.Errorf("ran %d jobs before the worker returned, want all 4 queued before close", got)
	}

	// Never started: close hands the queued jobs back.
	d2 := newDispatcher(1, 4, time.Millisecond)
	a, b := new(Job), new(Job)
	d2.push(a)
	d2.push(b)
	if left := d2.close(false); len(left) != 2 || left[0] != a || left[1] != b {
		t.Errorf("close(false) = %v, want the two queued jobs in order", left)
	}
}

// hangingFirst starts n workers on d whose first job hangs until release
// is closed (a hanging candidate), queues that job and waits until a
// worker holds it. join waits for the workers once d is closed.
func hangingFirst(t *testing.T, d *dispatcher, n int) (ran *atomic.Int64, release chan struct{}, join func()) {
	t.Helper()
	ran, release = new(atomic.Int64), make(chan struct{})
	first := new(Job)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			d.work(func(j *Job) bool {
				if j == first {
					<-release
				}
				ran.Add(1)
				return true
			})
		})
	}
	d.push(first)
	waitFor(t, func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.n == 0
	})
	return ran, release, wg.Wait
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(200 * time.Microsecond)
	}
}
