# The MNIST auxiliary-logit control: an independent branch with its own figure target.

MN = config["mnist"]


rule mnist_data:
    output:
        data="results/mnist/mnist.npz",
        manifest="results/mnist/mnist.npz.manifest.json",
    log:
        "logs/mnist/data.log",
    localrule: True
    resources:
        mem_mb=res("mnist_data", "mem_mb", 2000),
        runtime=res("mnist_data", "runtime", 10),
    params:
        json=as_json(dict(source=MN["source"], idx_path=MN["idx_path"])),
        cmd=script("mnist_data"),
    shell:
        "{params.cmd} --out {output.data} --params {params.json:q} 2> {log}"


rule mnist_experiment:
    input:
        data=rules.mnist_data.output.data,
    output:
        data="results/mnist/accuracy.csv",
        manifest="results/mnist/accuracy.csv.manifest.json",
    log:
        "logs/mnist/experiment.log",
    threads: THREADS
    resources:
        mem_mb=res("mnist_experiment", "mem_mb", 6000),
        runtime=res("mnist_experiment", "runtime", 60),
    params:
        json=as_json(
            dict(
                n_models=MN["n_models"],
                aux_logits=MN["aux_logits"],
                hidden=MN["hidden"],
                epochs=MN["teacher_epochs"],
                student_epochs=MN["student_epochs"],
                lr=MN["lr"],
                batch_size=MN["batch_size"],
                n_noise=MN["n_noise"],
                sigmas=MN["sigmas"],
                conditions=MN["conditions"],
                seed=MN["seed"],
            )
        ),
        ckpt="checkpoints/mnist",
        cmd=script("mnist_experiment"),
    shell:
        "{params.cmd} --data {input.data} --out {output.data} "
        "--checkpoint-dir {params.ckpt} --threads {threads} --params {params.json:q} 2> {log}"


rule fig_mnist:
    input:
        rules.mnist_experiment.output.data,
    output:
        fig=report(
            "reports/mnist/fig_mnist.png",
            caption="../report/fig_mnist.rst",
            category="MNIST control",
        ),
        table=report(
            "reports/mnist/fig_mnist.csv",
            caption="../report/mnist_table.rst",
            category="MNIST control",
        ),
        caption="reports/mnist/caption.md",
        manifest="reports/mnist/fig_mnist.png.manifest.json",
    log:
        "logs/mnist/figure.log",
    localrule: True
    resources:
        mem_mb=res("fig_mnist", "mem_mb", 2000),
        runtime=res("fig_mnist", "runtime", 10),
    params:
        json=as_json(dict(config_name=config["name"], config_hash=CFG_HASH)),
        cmd=script("mnist_figure"),
    shell:
        "{params.cmd} --accuracy {input} --out {output.fig} "
        "--table {output.table} --caption {output.caption} --params {params.json:q} 2> {log}"
